"""The kernel contract has one Python source (fastsegadv/contract.py); the C++ header and the Triton module
must agree with it, value for value (parsed here, not imported from each other)."""
import re
from pathlib import Path

from fastsegadv.contract import NUM_PARAMS, NUM_STATS, Flag, Param, Stat
from fastsegadv.kernels import weighted_ce as triton_kernels

HEADER = (Path(__file__).resolve().parents[2] / "csrc" / "weighting.h").read_text()


def _header_enum(prefix: str) -> dict[str, int]:
    """``NAME = value`` (or implicit +1) entries of the header's enums whose names start with ``prefix``."""
    out, last = {}, -1
    for name, value in re.findall(r"\b(" + prefix + r"[A-Z_]+)\s*(?:=\s*([^,/\n}]+))?\s*[,}]", HEADER):
        last = eval(value.replace("1 << ", "1<<")) if value else last + 1  # noqa: S307  (literals of the header)
        out[name.removeprefix(prefix)] = last
    return out


def test_header_flags_equal_the_contract():
    assert _header_enum("FLAG_") == {f.name: f.value for f in Flag}


def test_header_params_and_stats_equal_the_contract():
    params = _header_enum("P_")
    for name in ("W_CORRECT", "W_WRONG", "LAMBDA_T", "TAU"):
        assert params[name] == Param[name]
    assert Param.LAMBDA_B == Param.LAMBDA_T + 1 and Param.LAMBDA_F == Param.LAMBDA_T + 2  # LAMBDA_T + state
    assert re.search(rf"NUM_PARAMS = {NUM_PARAMS},", HEADER)
    stats = _header_enum("STAT_")
    assert stats == {s.name: s.value for s in Stat}
    assert re.search(r"STAT_FALSE, NUM_STATS \}", HEADER) and NUM_STATS == len(stats)
    regions = _header_enum("REGION_")
    assert regions == {"TRUE": Stat.TRUE - Stat.TRUE, "BOUNDARY": Stat.BOUNDARY - Stat.TRUE,
                       "FALSE": Stat.FALSE - Stat.TRUE}


def test_triton_flags_equal_the_contract():
    for flag in Flag:
        assert getattr(triton_kernels, flag.name).value == flag.value, flag.name
    assert triton_kernels.NUM_STATS == NUM_STATS and triton_kernels.NUM_PARAMS == NUM_PARAMS
