"""RankOutput is our own relay; these feed it iopub-shaped messages directly."""

import pytest

from lepton_nb.cluster.output import RankOutput


def stream(text, name="stdout"):
    return {"header": {"msg_type": "stream"}, "content": {"name": name, "text": text}}


def test_lines_are_prefixed_and_never_cut_mid_line(capsys):
    out = RankOutput()
    out.handle(0, stream("hel"))
    out.handle(1, stream("abc\nde"))
    out.handle(0, stream("lo\nwor"))
    out.handle(1, stream("f\n"))
    out.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["[rank 1] abc", "[rank 0] hello", "[rank 1] def", "[rank 0] wor"]


def test_stderr_goes_to_stderr(capsys):
    out = RankOutput()
    out.handle(2, stream("oops\n", "stderr"))
    out.close()
    captured = capsys.readouterr()
    assert captured.err == "[rank 2] oops\n" and captured.out == ""


def test_without_streaming_output_is_held_then_grouped_by_rank(capsys):
    out = RankOutput(stream=False)
    out.handle(1, stream("b1\n"))
    out.handle(0, stream("a1\n"))
    out.handle(1, stream("b2\n"))
    assert capsys.readouterr().out == ""
    out.close()
    assert capsys.readouterr().out.splitlines() == ["[rank 0] a1", "[rank 1] b1", "[rank 1] b2"]


@pytest.mark.parametrize("kind", ["execute_result"])
def test_execute_result_is_shown_with_rank(capsys, kind):
    out = RankOutput()
    out.handle(0, {"header": {"msg_type": kind}, "content": {"data": {"text/plain": "42"}}})
    assert capsys.readouterr().out == "[rank 0] Out: 42\n"
