from lepton_nb import DistributedTimeout, RankFailure, RemoteError


def test_remote_error_names_every_failed_rank_and_keeps_results():
    err = RemoteError(
        [RankFailure(3, "KeyError", "'x'", "tb3"), RankFailure(1, "ValueError", "bad", "tb1")],
        results={0: 10, 2: 12},
    )
    assert err.ranks == [1, 3]
    assert "2 ranks failed" in str(err)
    assert "rank 1: ValueError: bad" in str(err) and "rank 3: KeyError: 'x'" in str(err)
    assert err.results == {0: 10, 2: 12}
    lines = err._render_traceback_()
    # each failed rank's traceback shown once, in rank order
    assert lines.count("tb1") == 1 and lines.count("tb3") == 1
    assert lines.index("tb1") < lines.index("tb3")
    assert any("err.results" in line for line in lines)


def test_distributed_timeout_is_a_remote_error_naming_the_ranks():
    err = DistributedTimeout(
        [RankFailure(1, "Timeout", "did not finish within 2 s")], {0: {}}, "note", 2.0, [1]
    )
    assert isinstance(err, RemoteError)
    assert str(err).startswith("timed out after 2 s; rank(s) that did not finish: 1")
    assert "note" in str(err)
