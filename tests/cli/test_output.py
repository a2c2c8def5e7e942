"""The operator command's pieces that need no service: progress, output, names, parsing."""

from __future__ import annotations

import io
import json

import pytest
import pywbem

from vsms.cim.enums import ReturnCode
from vsms.cli import codes
from vsms.cli.disk import parse_size
from vsms.cli.main import build_parser
from vsms.cli.output import Output, plain
from vsms.cli.progress import JobProgress
from vsms.cli.transfer import split_problems


def test_progress_bar_on_a_terminal_redraws_in_place() -> None:
    stream = io.StringIO()
    bar = JobProgress("Exporting 'vm1'", stream=stream, live=True)
    bar.update(0, "Job is running")
    bar.update(0, "Job is running")  # unchanged: not drawn again
    bar.update(45, "copying")
    bar.update(100, "Completed")
    bar.close()
    text = stream.getvalue()
    assert text.count("\r\x1b[K") == 3 and text.endswith("\n")
    assert "Exporting 'vm1' [" + "#" * 13 + "-" * 17 + "]  45%  copying" in text
    assert "[" + "#" * 30 + "] 100%  Completed" in text


def test_progress_off_a_terminal_prints_lines_on_change() -> None:
    stream = io.StringIO()
    bar = JobProgress("Importing x", stream=stream, live=False)
    for pct in (0, 0, 50, 50, 100):
        bar.update(pct, "")
    bar.close()
    assert stream.getvalue().splitlines() == ["Importing x: 0%", "Importing x: 50%",
                                              "Importing x: 100%"]


def test_output_text_json_and_errors() -> None:
    out, err = io.StringIO(), io.StringIO()
    Output("text", stdout=out, stderr=err).result(["a", "b"], {"x": 1})
    assert out.getvalue() == "a\nb\n"
    out = io.StringIO()
    Output("json", stdout=out, stderr=err).result("ignored", {
        "n": pywbem.Uint16(3), "when": pywbem.CIMDateTime("20260101000000.000000+000"),
        "path": pywbem.CIMInstanceName("C", {"K": "v"}, namespace="root/virtualization")})
    assert json.loads(out.getvalue()) == {"n": 3, "when": "20260101000000.000000+000",
                                          "path": "/root/virtualization:C.K=\"v\""}
    out, err = io.StringIO(), io.StringIO()
    Output("json", stdout=out, stderr=err).error("it broke", {"code": pywbem.Uint32(32773)})
    assert err.getvalue() == "vsms: error: it broke\n"
    assert json.loads(out.getvalue()) == {"ok": False, "error": "it broke", "code": 32773}
    table = Output().table([["vm1", "Off"], ["a-longer-name", "Running"]], ["NAME", "STATE"])
    assert table == ["NAME           STATE", "vm1            Off",
                     "a-longer-name  Running"]
    assert plain([True, None, 1.5]) == [True, None, 1.5]


def test_return_values_are_named_as_the_reference_names_them() -> None:
    assert codes.return_name(32773) == "Invalid parameter (32773)"
    assert codes.return_name(32775) == "Invalid state for this operation (32775)"
    assert codes.return_name(12345) == "Unknown error (12345)"
    assert set(codes.RETURN_NAMES) == {int(c) for c in ReturnCode}
    assert "per-VM subdirectory" in codes.reason("ImportVirtualSystem", 32773)
    assert codes.reason("Whatever", 32769).startswith("a path is outside the service's storage")
    assert codes.state_name(32769) == "Saved" and codes.job_state_name(10) == "Exception"


def test_sizes_and_problem_lists() -> None:
    assert parse_size("64M") == 64 << 20
    assert parse_size("1.5G") == 3 << 29
    assert parse_size("10GiB") == 10 << 30
    assert parse_size("4096") == 4096
    for bad in ("", "ten", "-1M", "0"):
        with pytest.raises(Exception, match="size"):
            parse_size(bad)
    text = "cannot import /x: 2 problem(s): (1) config.xml is missing; (2) the disk d is absent"
    assert split_problems(text) == ["config.xml is missing", "the disk d is absent"]
    assert split_problems("plain words") == ["plain words"]


def test_global_options_may_follow_the_command() -> None:
    args = build_parser().parse_args(["vm", "list", "--output", "json", "--url", "http://h:1"])
    assert (args.output, args.url) == ("json", "http://h:1")
    args = build_parser().parse_args(["--output", "json", "jobs"])
    assert args.output == "json" and args.watch is False
