"""What every model family's space shares: bit choices, first/last-layer policy, timesteps,
input encoding, neuron settings — and the validation of all of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bitnas.errors import SpecError
from bitnas.spaces._base import SearchSpace
from bitnas.spaces.architecture import ENCODINGS, Architecture, LayerSpec, NeuronSpec, check_bits
from bitnas.spaces.choosers import Chooser, ExtremeChooser

__all__ = ["BitChoices", "FamilySpace", "choices", "positive"]

MAX_TIMESTEPS = 256
SEARCH = "search"


def choices(name: str, value: Any, check: Callable[[str, Any], Any]) -> tuple[Any, ...]:
    """Validate a list of choices (a single value is a one-element list)."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"`{name}` must be a list of choices, got {value!r}", field=name)
    if not value:
        raise SpecError(f"`{name}` must list at least one choice, got []", field=name)
    for v in value:
        check(name, v)
    if len(set(value)) != len(value):
        raise SpecError(f"`{name}` must not repeat a choice, got {list(value)}", field=name)
    return tuple(value)


def positive(limit: int) -> Callable[[str, Any], None]:
    def check(name: str, v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= limit:
            raise SpecError(
                f"every `{name}` choice must be an integer in 1..{limit}, got {v!r}", field=name
            )

    return check


def int_range(name: str, value: Any, low: int, high: int) -> tuple[int, int]:
    """An inclusive [min, max] range (a single integer is a fixed value)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        or not low <= value[0] <= value[1] <= high
    ):
        raise SpecError(
            f"`{name}` must be an inclusive range [min, max] with {low} <= min <= max <= "
            f"{high}, got {value!r}",
            field=name,
        )
    return (value[0], value[1])


def _encoding(name: str, v: Any) -> None:
    if v not in ENCODINGS:
        raise SpecError(f"`{name}` must be one of {list(ENCODINGS)}, got {v!r}", field=name)


def _policy(name: str, v: Any) -> int | str:
    if v == SEARCH:
        return SEARCH
    try:
        return check_bits(name, v)
    except SpecError:
        raise SpecError(
            f'`{name}` must be "search" or a bit width (1..16 or 32), got {v!r}', field=name
        ) from None


class BitChoices:
    """Hands out weight/activation bits layer by layer during one ``build``.

    Shared choices are made lazily, on first use, so a space whose every layer is fixed by
    the first/last policy creates no parameter that could not matter.
    """

    def __init__(self, space: FamilySpace, choose: Chooser) -> None:
        self.space = space
        self.choose = choose
        self._shared: dict[str, Any] = {}

    def _pick(self, kind: str, name: str) -> int:
        s = self.space
        opts: Sequence[int] = s.wbits if kind == "wbits" else s.abits
        if getattr(s, f"{kind}_per_layer"):
            return self.choose.categorical(name, opts)
        if kind not in self._shared:
            self._shared[kind] = self.choose.categorical(kind, opts)
        return int(self._shared[kind])

    def wbits(self, name: str, *, first: bool = False, last: bool = False) -> int:
        s = self.space
        policy = s.first_wbits if first else s.last_wbits if last else SEARCH
        return policy if isinstance(policy, int) else self._pick("wbits", name)

    def abits(self, name: str) -> int:
        return self._pick("abits", name)


@dataclass(frozen=True)
class FamilySpace(SearchSpace):
    """Fields every family shares (see ``studies/*.toml`` for how a study file sets them).

    ``first_wbits``/``last_wbits``: the weight bits of the first layer and of the read-out —
    ``"search"`` (chosen like any layer) or a fixed bit width such as 8, the convention most
    published BitOps tables use. The policy is recorded with every trial.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    wbits: tuple[int, ...] = (2, 4, 8)
    wbits_per_layer: bool = True
    abits: tuple[int, ...] = (1, 2, 4)
    abits_per_layer: bool = True
    first_wbits: int | str = SEARCH
    last_wbits: int | str = SEARCH
    timesteps: tuple[int, ...] = (1, 2, 4)
    input_encoding: tuple[str, ...] = ("direct",)
    input_bits: int = 8
    neuron: NeuronSpec = field(default_factory=NeuronSpec)

    def _validate_common(self) -> None:
        object.__setattr__(self, "wbits", choices("wbits", self.wbits, check_bits))
        object.__setattr__(self, "abits", choices("abits", self.abits, check_bits))
        object.__setattr__(
            self, "timesteps", choices("timesteps", self.timesteps, positive(MAX_TIMESTEPS))
        )
        object.__setattr__(
            self, "input_encoding", choices("input_encoding", self.input_encoding, _encoding)
        )
        check_bits("input_bits", self.input_bits)
        object.__setattr__(self, "first_wbits", _policy("first_wbits", self.first_wbits))
        object.__setattr__(self, "last_wbits", _policy("last_wbits", self.last_wbits))
        for name in ("wbits_per_layer", "abits_per_layer"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(
                    f"`{name}` must be true or false, got {getattr(self, name)!r}", field=name
                )
        n = self.num_classes
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise SpecError(f"`num_classes` must be >= 2, got {n!r}")
        object.__setattr__(self, "input_shape", tuple(self.input_shape))

    def _architecture(self, layers: list[LayerSpec], timesteps: int, encoding: str) -> Architecture:
        return Architecture(
            family=self.family,
            input_shape=self.input_shape,
            num_classes=self.num_classes,
            layers=tuple(layers),
            timesteps=timesteps,
            input_encoding=encoding,  # type: ignore[arg-type]
            input_bits=self.input_bits,
            neuron=self.neuron,
        )

    def _extremes_over(
        self, cost: Callable[[Architecture], float], structures: list[dict[str, Any]]
    ) -> tuple[Architecture, Architecture]:
        """(cheapest, dearest) for a cost that grows with every numeric choice, trying each
        input encoding and each of ``structures`` (choices fixed by name) one by one."""
        fixed = [{**s, "input_encoding": e} for s in structures for e in self.input_encoding]
        cheap = [self.build(ExtremeChooser(min, f)) for f in fixed]
        dear = [self.build(ExtremeChooser(max, f)) for f in fixed]
        return min(cheap, key=cost), max(dear, key=cost)

    def extremes(self, cost: Callable[[Architecture], float]) -> tuple[Architecture, Architecture]:
        """(cheapest, dearest) without enumeration: exact for any cost that does not decrease
        when a width, a depth, a bit width or the timesteps grow — every cost of
        ``bitnas.spaces.cost`` on these families (each a sum of products of those factors).
        Families where a structural choice breaks that (see CNN stages) override this."""
        return self._extremes_over(cost, [{}])

    def layer_policy(self) -> dict[str, Any]:
        """The first/last-layer policy, as recorded on every trial."""
        return {"first_wbits": self.first_wbits, "last_wbits": self.last_wbits}

    def _n_bit_choices(self, n_layers: int, n_hidden: int) -> int:
        """How many bit assignments a network with ``n_layers`` weighted layers (the first and
        the read-out included) and ``n_hidden`` neurons has."""
        free = n_layers - isinstance(self.first_wbits, int) - isinstance(self.last_wbits, int)
        # shared: one choice, made only if some layer is not fixed by the policy
        w = len(self.wbits) ** free if self.wbits_per_layer else len(self.wbits) if free else 1
        a = len(self.abits) ** n_hidden if self.abits_per_layer else len(self.abits)
        return int(w * a * len(self.timesteps) * len(self.input_encoding))
