"""The one error the contract's checks raise."""

from __future__ import annotations


class ContractError(ValueError):
    """A value the contract refuses.

    `problem` is said the same way on both sides; `where` is the part of the checked value
    at fault, relative to it (`[2].name` in a list of headers), or "" for the value itself.
    """

    def __init__(self, problem: str, where: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.where = where
