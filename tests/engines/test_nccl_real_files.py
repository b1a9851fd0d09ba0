"""nccl-tests and rccl-tests output as real clusters produce it: each version's header, logs of several tests.

Every fixture is written in the shape that tool's source prints (tests/engines/formats.py names the tags);
each test pins one behaviour a real file needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meter.engines.nccl_tests import NcclTestsError, read_nccl_tests
from tests.conftest import run_meter
from tests.engines.formats import nccl_log

SIZES = [(1 << 20, 30.0), (1 << 26, 520.0), (1 << 30, 6800.0)]  # bytes, microseconds
GiB = 1 << 30


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _time_us(size: int, busbw_gb_s: float, factor: float) -> float:
    """The time nccl-tests would print for a row of this busbw."""
    return size / (busbw_gb_s / factor) / 1e3


@pytest.mark.parametrize("nodes", [1, 2, 10])
def test_all_to_all_rows_with_an_unchecked_in_place_column_are_verified(tmp_path: Path, nodes: int):
    hosts = [f"node{i:02d}" for i in range(nodes)]
    text = nccl_log("alltoall", SIZES, hosts=hosts)
    assert all(line.rstrip().endswith("N/A") for line in text.splitlines() if line[:1] == " ")  # as 2.13.1+ prints
    (test,) = read_nccl_tests(_write(tmp_path, "a2a.txt", text)).tests
    assert test.collective == "all_to_all" and all(r.verified for r in test.rows)
    assert all(r.in_place.passed is None and r.out_of_place.passed for r in test.rows)


def test_a_failed_out_of_place_check_still_fails_the_row(tmp_path: Path):
    (test,) = read_nccl_tests(_write(tmp_path, "a2a.txt", nccl_log("alltoall", SIZES, wrong="12"))).tests
    assert not any(r.verified for r in test.rows)
    (unchecked,) = read_nccl_tests(_write(tmp_path, "c0.txt", nccl_log("alltoall", SIZES, wrong="N/A"))).tests
    assert not any(r.verified for r in unchecked.rows)  # -c 0: nothing checked, nothing verified


def _cluster(tmp_path: Path, *extra: str) -> tuple[dict, str]:
    r = run_meter("cost", "cluster", "--hardware", "h100-sxm", "--ep", "64", "--samples", "0", "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["rows"][0], r.stderr


def test_80_gpus_with_all_reduce_and_all_to_all_take_the_network_from_the_all_to_all(tmp_path: Path):
    """The cluster file of the issue: 10 nodes of 8 H100s, all-reduce busbw 320.5 GB/s, all-to-all 50.4 GB/s."""
    from meter.cost.ep_comm import measured_links
    from meter.engines.comm_run import load_comm_run

    hosts = [f"node{i:02d}" for i in range(10)]
    ar = nccl_log("all_reduce", [(GiB, _time_us(GiB, 320.5, 2 * 79 / 80))], hosts=hosts)
    a2a = nccl_log("alltoall", [(GiB, _time_us(GiB, 50.4, 79 / 80))], hosts=hosts)
    path = _write(tmp_path, "cluster.txt", ar + a2a)
    links = measured_links(load_comm_run(path, []), str(path))
    # bytes to peers per rank over time is busbw: 50.4 GB/s (to 2 decimals as printed)
    assert links.network_bytes_per_s == pytest.approx(50.4e9, rel=2e-3) and links.network_from == "all_to_all"
    assert "network from all-to-alls" in links.source and "no all-to-all measured" not in links.source
    assert links.network_off_node_share == pytest.approx(72 / 79)
    row, _ = _cluster(tmp_path, "--comm-run", str(path))
    assert row["links"]["network_bytes_per_s"] == "measured run" and row["binds"] == "network"
    # DeepSeek-V3 at EP 64 on that network: about 207 us of EP communication per token (not NVLink's 60)
    assert 190e-6 < row["ep_comm_s_per_token"] < 225e-6


def test_all_reduce_stands_in_per_link_only_where_no_all_to_all_was_measured(tmp_path: Path):
    from meter.cost.ep_comm import measured_links
    from meter.engines.comm_run import load_comm_run

    intra = nccl_log("all_reduce", SIZES)  # one node: NVLink from the all-reduce only
    path = _write(tmp_path, "ar.txt", intra)
    links = measured_links(load_comm_run(path, []), str(path))
    assert links.nvlink_from == "all_reduce" and "no all-to-all measured in this scope: an upper bound" in links.source
    failed = _write(tmp_path, "both.txt", intra + nccl_log("alltoall", SIZES, wrong="3"))
    links = measured_links(load_comm_run(failed, []), str(failed))
    assert "3 all-to-all row(s) not verified" in links.source  # measured but unverified: said, not hidden


def test_old_max_deviation_column_is_judged_against_nccl_tests_tolerance(tmp_path: Path):
    v100 = "Tesla V100-SXM2-32GB"
    ok = read_nccl_tests(_write(tmp_path, "ok.txt", nccl_log("all_reduce", SIZES, style="2.11", name=v100)))
    (test,) = ok.tests
    assert test.wrong_column == "error" and all(r.out_of_place.wrong == 2e-07 for r in test.rows)
    assert all(r.verified for r in test.rows)  # 2e-07 <= 1e-5 x 7 for float over 8 ranks
    bad = nccl_log("all_reduce", SIZES, style="2.11", name=v100, wrong="1e-03")
    (test,) = read_nccl_tests(_write(tmp_path, "bad.txt", bad)).tests
    assert not any(r.verified for r in test.rows)
    half = nccl_log("all_reduce", SIZES, style="2.11", dtype="half", name=v100)  # 1e-03 <= 1e-2 x 7
    assert all(r.verified for r in read_nccl_tests(_write(tmp_path, "half.txt", half)).tests[0].rows)


def test_a_log_of_several_tests_reads_the_modelled_ones_and_lists_the_rest(tmp_path: Path):
    tests = ("all_reduce", "reduce_scatter", "alltoall", "sendrecv", "all_gather")
    path = _write(tmp_path, "loop.log", "".join(nccl_log(t, SIZES) for t in tests))
    out = read_nccl_tests(path)
    assert [t.collective for t in out.tests] == ["all_reduce", "all_to_all", "all_gather"]
    assert [name for name, _ in out.skipped] == ["reduce_scatter_perf", "sendrecv_perf"]
    r = run_meter("import", "nccl-tests", str(path), "-o", str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    skipped = [line for line in r.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "reduce_scatter_perf" in skipped[0] and "sendrecv_perf" in skipped[0]
    doc = json.loads((tmp_path / "o.json").read_text())
    assert any("skipped" in n for n in doc["metadata"]["imported"]["notes"])


def test_mpi_builds_are_the_same_tests(tmp_path: Path):
    path = _write(tmp_path, "mpi.txt", nccl_log("all_reduce", SIZES, program="all_reduce_perf_mpi"))
    (test,) = read_nccl_tests(path).tests
    assert test.collective == "all_reduce" and test.program == "all_reduce_perf_mpi"


def test_outputs_before_2_16_7_infer_the_collective_and_say_how(tmp_path: Path):
    (ar,) = read_nccl_tests(_write(tmp_path, "ar.txt", nccl_log("all_reduce", SIZES, style="2.13"))).tests
    assert ar.collective == "all_reduce" and ar.collective_from.startswith("inferred from the rows")
    (old,) = read_nccl_tests(_write(tmp_path, "old.txt", nccl_log("alltoall", SIZES, style="2.11"))).tests
    assert old.collective == "all_to_all"  # before 2.13 only the all-to-all leaves the redop column empty
    (ag,) = read_nccl_tests(_write(tmp_path, "ag.txt", nccl_log("all_gather", SIZES, style="2.11"))).tests
    assert ag.collective == "all_gather"  # no redop column, busbw = algbw x (n-1)/n
    logged = "$ mpirun -np 8 ./build/alltoall_perf -b 1M -e 1G -f 64\n" + nccl_log("alltoall", SIZES, style="2.13")
    (cmd,) = read_nccl_tests(_write(tmp_path, "cmd.txt", logged)).tests
    assert cmd.collective == "all_to_all" and cmd.collective_from == "the command line in the log"


def test_an_untold_all_to_all_asks_for_collective_in_cost_cluster_too(tmp_path: Path):
    path = _write(tmp_path, "a2a-2.13.txt", nccl_log("alltoall", SIZES, style="2.13"))
    with pytest.raises(NcclTestsError, match="fit all_gather and all_to_all alike: give --collective"):
        read_nccl_tests(path)
    r = run_meter("cost", "cluster", "--comm-run", str(path), "--hardware", "h100-sxm", "--samples", "0")
    assert r.returncode == 2 and "--collective" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    row, err = _cluster(tmp_path, "--comm-run", str(path), "--collective", "all_to_all")
    assert (
        row["links"]["nvlink_bytes_per_s"] == "measured run" and "the test is all_to_all (as --collective says)" in err
    )
    bad = run_meter("cost", "cluster", "--collective", "all_to_all", "--samples", "0")
    assert bad.returncode == 2 and "give --comm-run FILE" in bad.stderr


def test_rccl_tests_output_records_the_tool_and_the_vendor(tmp_path: Path):
    path = _write(tmp_path, "rccl.txt", nccl_log("all_reduce", SIZES, style="rccl"))
    (test,) = read_nccl_tests(path).tests
    assert (test.tool, test.vendor, test.n_ranks) == ("rccl-tests", "AMD", 8)
    r = run_meter("import", "nccl-tests", str(path), "-o", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert "rccl-tests on AMD Instinct MI300X" in r.stdout and "nccl-tests on" not in r.stdout
    imported = json.loads((tmp_path / "r.json").read_text())["metadata"]["imported"]
    assert (imported["tool"], imported["vendor"]) == ("rccl-tests", "AMD")
    r = run_meter("cost", "cluster", "--comm-run", str(path), "--hardware", "h100-sxm", "--ep", "64", "--samples", "0")
    assert "was on 'AMD Instinct MI300X', which no hardware config matches" in r.stdout and "None" not in r.stdout


def test_rccl_output_without_its_version_line_is_told_by_its_gpus(tmp_path: Path):
    text = nccl_log("all_reduce", SIZES, style="rccl").replace("rccl-tests: Version develop:4f5e6a1\n", "")
    (test,) = read_nccl_tests(_write(tmp_path, "old-rccl.txt", text)).tests
    assert (test.tool, test.vendor, test.version) == ("rccl-tests", "AMD", None)
    from meter.engines.comm_run import comm_run

    layout = comm_run([(tmp_path / "old-rccl.txt", test)], specs=[]).metadata.distributed
    assert (layout.backend, layout.launcher) == ("rccl", "rccl-tests")


def test_rccl_in_place_only_output(tmp_path: Path):
    text = nccl_log("alltoall", SIZES, style="rccl", in_place_only=True, wrong_in_place="0")
    (test,) = read_nccl_tests(_write(tmp_path, "ip.txt", text), "all_to_all").tests
    assert all(r.out_of_place is None and r.in_place is not None and r.verified for r in test.rows)
    assert test.rows[-1].timing.time_us == pytest.approx(6800 * 1.02, abs=0.1)


def test_a_link_figure_above_the_configured_link_is_flagged_not_adopted(tmp_path: Path):
    """A single-node NVLS all-reduce: busbw 482 GB/s, above the 450 GB/s per direction of h100-sxm's NVLink."""
    path = _write(tmp_path, "nvls.txt", nccl_log("all_reduce", [(GiB, _time_us(GiB, 482.0, 1.75))]))
    r = run_meter("cost", "cluster", "--comm-run", str(path), "--hardware", "h100-sxm", "--ep", "8", "--samples", "0")
    assert r.returncode == 0, r.stderr
    flagged = [line for line in r.stdout.splitlines() if "above the 450 GB/s" in line]
    assert len(flagged) == 1 and "482 GB/s" in flagged[0] and "not adopted" in flagged[0]
    row, _ = _cluster(tmp_path, "--comm-run", str(path))
    assert row["links"]["nvlink_bytes_per_s"] == "hardware config"


def test_all_reduce_over_every_operator_keeps_sum(tmp_path: Path):
    """``all_reduce_perf -o all``: one table, a row per size and operator; training reduces with sum."""
    text = nccl_log("all_reduce", SIZES)
    rows = [line for line in text.splitlines() if line.startswith(" ")]
    more = [row.replace("     sum  ", "     max  ") for row in rows]
    path = _write(tmp_path, "ops.txt", text.replace(rows[-1], rows[-1] + "\n" + "\n".join(more)))
    r = run_meter("import", "nccl-tests", str(path), "-o", str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "o.json").read_text())
    assert len(doc["communication"]) == 3
    assert any("rows of max, sum: only sum kept" in n for n in doc["metadata"]["imported"]["notes"])
