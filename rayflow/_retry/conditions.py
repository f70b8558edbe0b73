"""Retry conditions: which exceptions a step may be retried for.

Each condition is called with the exception the step raised. ``a | b`` retries when either says so, ``a & b``
only when both do; a plain function ``(error) -> bool`` combines with them too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rayflow._retry.parts import Part, RetryCondition

__all__ = [
    "ConditionBase",
    "retry_all",
    "retry_always",
    "retry_any",
    "retry_if_exception",
    "retry_if_exception_cause_type",
    "retry_if_exception_message",
    "retry_if_exception_type",
    "retry_if_not_exception_message",
    "retry_if_not_exception_type",
    "retry_never",
    "retry_unless_exception_type",
]

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


class ConditionBase(Part):
    """A retry condition that combines with ``|`` (any) and ``&`` (all)."""

    def __call__(self, error: BaseException) -> bool:
        raise NotImplementedError

    def __or__(self, other: RetryCondition) -> retry_any:
        return retry_any(self, other)

    def __ror__(self, other: RetryCondition) -> retry_any:
        return retry_any(other, self)

    def __and__(self, other: RetryCondition) -> retry_all:
        return retry_all(self, other)

    def __rand__(self, other: RetryCondition) -> retry_all:
        return retry_all(other, self)


class retry_if_exception(ConditionBase):
    """Retry when ``predicate(error)`` is true."""

    def __init__(self, predicate: Callable[[BaseException], bool]) -> None:
        self.predicate = predicate

    def __call__(self, error: BaseException) -> bool:
        return bool(self.predicate(error))


class retry_if_exception_type(ConditionBase):
    """Retry when the error is an instance of ``exception_types`` (a type or a tuple of types)."""

    def __init__(self, exception_types: ExceptionTypes = Exception) -> None:
        self.exception_types = exception_types

    def __call__(self, error: BaseException) -> bool:
        return isinstance(error, self.exception_types)


class retry_if_not_exception_type(ConditionBase):
    """Retry unless the error is an instance of ``exception_types``: for errors known to be permanent."""

    def __init__(self, exception_types: ExceptionTypes = Exception) -> None:
        self.exception_types = exception_types

    def __call__(self, error: BaseException) -> bool:
        return not isinstance(error, self.exception_types)


class retry_unless_exception_type(retry_if_not_exception_type):
    """The same as ``retry_if_not_exception_type`` (the name tenacity users know)."""


class retry_if_exception_message(ConditionBase):
    """Retry when ``str(error)`` equals ``message``, or contains a match of the regular expression ``match``.

    Give exactly one of the two (``TypeError`` otherwise)."""

    def __init__(self, message: str | None = None, match: str | re.Pattern[str] | None = None) -> None:
        if (message is None) == (match is None):
            raise TypeError(f"{type(self).__name__}() takes exactly one of 'message' or 'match'")
        self.message = message
        self.match = match
        self._pattern = re.compile(match) if match is not None else None

    def __call__(self, error: BaseException) -> bool:
        text = str(error)
        if self._pattern is not None:
            return self._pattern.search(text) is not None
        return text == self.message


class retry_if_not_exception_message(retry_if_exception_message):
    """Retry unless ``str(error)`` equals ``message`` or matches ``match``."""

    def __call__(self, error: BaseException) -> bool:
        return not super().__call__(error)


class retry_if_exception_cause_type(ConditionBase):
    """Retry when an explicit cause of the error (``raise ... from cause``, followed down the chain) is an
    instance of ``exception_types``. The error itself and implicit contexts (an exception raised while handling
    another, without ``from``) do not count."""

    def __init__(self, exception_types: ExceptionTypes = Exception) -> None:
        self.exception_types = exception_types

    def __call__(self, error: BaseException) -> bool:
        cause = error.__cause__
        while cause is not None:
            if isinstance(cause, self.exception_types):
                return True
            cause = cause.__cause__
        return False


class retry_any(ConditionBase):
    """Retry when any of ``conditions`` says so (none given: never)."""

    def __init__(self, *conditions: RetryCondition) -> None:
        self.retries = conditions

    def __call__(self, error: BaseException) -> bool:
        return any(condition(error) for condition in self.retries)


class retry_all(ConditionBase):
    """Retry when every one of ``conditions`` says so (none given: always)."""

    def __init__(self, *conditions: RetryCondition) -> None:
        self.retries = conditions

    def __call__(self, error: BaseException) -> bool:
        return all(condition(error) for condition in self.retries)


class retry_always(ConditionBase):
    """Retry whatever the error."""

    def __call__(self, error: BaseException) -> bool:
        return True


class retry_never(ConditionBase):
    """Never retry."""

    def __call__(self, error: BaseException) -> bool:
        return False
