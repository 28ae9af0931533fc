"""Run-time type checks (pipeline option ``runtime_type_check``): every input element and every
output of a hinted ParDo/Map/FlatMap is checked against its hints while the pipeline runs, and a
violation fails the run with :class:`~headrace.model.typehints.TypeCheckError`, as Beam's
``TypeCheckWrapperDoFn`` does.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Iterable
from typing import Any

from headrace.model.pvalue import TaggedOutput
from headrace.model.transforms.dofn import CombineFn, DoFn
from headrace.model.typehints import TypeCheckError, TypeVariable, format_hint

__all__ = ["TypeCheckCombineFn", "TypeCheckDoFn", "instance_matches"]


def instance_matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is an instance of ``hint`` (generic hints checked element-wise where
    the value is a list, tuple, set or dict; lazy iterables are not consumed).

    >>> instance_matches((1, "a"), typing.Tuple[int, str]), instance_matches([1, "a"], list[int])
    (True, False)
    """
    if hint is None or hint is Any or hint is object or isinstance(hint, TypeVariable | TypeVar):
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(instance_matches(value, a) for a in args)
    if origin is None:
        return not isinstance(hint, type) or isinstance(value, hint)
    if not isinstance(origin, type) or not isinstance(value, origin):
        return False
    value = typing.cast(Any, value)
    if not args:
        return True
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(instance_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            instance_matches(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin is dict and len(args) == 2:
        return all(
            instance_matches(k, args[0]) and instance_matches(v, args[1]) for k, v in value.items()
        )
    if isinstance(value, list | tuple | set | frozenset) and issubclass(
        origin, collections.abc.Iterable
    ):
        return all(instance_matches(v, args[0]) for v in value)
    return True


TypeVar = typing.TypeVar


class TypeCheckDoFn(DoFn):
    """Wraps a DoFn: checks the element before ``process`` and each main output after it."""

    def __init__(self, fn: DoFn, label: str, input_hint: Any, output_hint: Any) -> None:
        self.fn = fn
        self.label = label
        self.input_hint = input_hint
        self.output_hint = output_hint

    def setup(self) -> None:
        self.fn.setup()

    def start_bundle(self) -> None:
        self.fn.start_bundle()

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        if not instance_matches(element, self.input_hint):
            raise self._violation("input", self.input_hint, element)
        result = self.fn.process(element, *args, **kwargs)
        if result is None:
            return
        if isinstance(result, (dict, bytes, str)):
            # Beam's TypeCheckWrapperDoFn (apache_beam/typehints/typecheck.py) refuses these,
            # which a FlatMap would otherwise iterate, when run-time checks are on.
            kind = type(result).__name__
            raise TypeCheckError(
                f"{self.label}: Returning a {kind} from a ParDo or FlatMap is discouraged. "
                f"Please use list({result!r:.40}) if you really want this behavior."
            )
        if not isinstance(result, collections.abc.Iterable):
            raise TypeCheckError(
                f"{self.label}: FlatMap and ParDo must return an iterable. {type(result)} was "
                "returned instead."
            )
        for out in result:
            value = out.value if type(out) is TaggedOutput else out
            if type(out) is not TaggedOutput and not instance_matches(value, self.output_hint):
                raise self._violation("output", self.output_hint, value)
            yield out

    def _violation(self, what: str, hint: Any, value: Any) -> TypeCheckError:
        return TypeCheckError(
            f"Runtime type violation detected within {self.label}: type-hint for the {what} "
            f"violated. Expected an instance of {format_hint(hint)}, instead found {value!r}, "
            f"an instance of {format_hint(type(value))}."
        )

    def finish_bundle(self) -> Iterable[Any] | None:
        return self.fn.finish_bundle()

    def teardown(self) -> None:
        self.fn.teardown()

    def default_label(self) -> str:
        return self.fn.default_label()


class TypeCheckCombineFn(CombineFn):
    """Wraps a CombineFn (pipeline option ``runtime_type_check``): each input value is checked
    against the CombineFn's input hint in ``add_input`` and each result against its output hint
    in ``extract_output``, as Beam's ``TypeCheckCombineFn`` does; a violation fails the run
    with :class:`~headrace.model.typehints.TypeCheckError` naming the combine step.

    >>> fn = TypeCheckCombineFn(CombineFn.from_callable(sum), "Sum/CombinePerKey", int, int)
    >>> fn.apply([1, 2])
    3
    >>> fn.apply([1, "2"])
    Traceback (most recent call last):
    ...
    headrace.model.typehints.TypeCheckError: Runtime type violation detected within \
Sum/CombinePerKey: Type-hint for argument: 'element' violated. Expected an instance of \
<class 'int'>, instead found 2, an instance of <class 'str'>.
    """

    def __init__(self, fn: CombineFn, label: str, input_hint: Any, output_hint: Any) -> None:
        self.fn = fn
        self.label = label
        self.input_hint = input_hint
        self.output_hint = output_hint

    def setup(self, *args: Any, **kwargs: Any) -> None:
        self.fn.setup(*args, **kwargs)

    def create_accumulator(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn.create_accumulator(*args, **kwargs)

    def add_input(self, mutable_accumulator: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        if not instance_matches(element, self.input_hint):
            raise self._violation("argument: 'element'", self.input_hint, element)
        return self.fn.add_input(mutable_accumulator, element, *args, **kwargs)

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        return self.fn.merge_accumulators(accumulators, *args, **kwargs)

    def compact(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        return self.fn.compact(accumulator, *args, **kwargs)

    def extract_output(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        result = self.fn.extract_output(accumulator, *args, **kwargs)
        if not instance_matches(result, self.output_hint):
            raise self._violation("return type", self.output_hint, result)
        return result

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        self.fn.teardown(*args, **kwargs)

    def default_label(self) -> str:
        return self.fn.default_label()

    def _violation(self, what: str, hint: Any, value: Any) -> TypeCheckError:
        # Beam's wording (apache_beam/typehints/decorators.py, _check_instance_type).
        return TypeCheckError(
            f"Runtime type violation detected within {self.label}: Type-hint for {what} "
            f"violated. Expected an instance of {format_hint(hint)}, instead found {value}, "
            f"an instance of {format_hint(type(value))}."
        )
