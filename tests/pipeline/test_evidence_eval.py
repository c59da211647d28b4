"""`memllm evidence-eval`: the heuristic on Re-DocRED dev, SmolLM2-135M as the LLM judge, one-line errors."""

import json

from memllm.annotators.evidence_llm import parse_verdict
from memllm.pipeline.cli import main


def test_evidence_eval_prints_the_heuristic_on_dev(capsys, dev):
    assert main(["evidence-eval", "--input", str(dev.documents)]) == 0
    name, n, accuracy, precision, recall, f1 = capsys.readouterr().out.splitlines()[1].split()
    assert name == "heuristic" and n == "2000"
    assert float(precision) > float(recall) > 0  # it says Yes at one sentence only; evidence is often several
    p, r = float(precision), float(recall)
    assert abs(float(f1) - 2 * p * r / (p + r)) < 2e-3


def test_evidence_eval_scores_the_llm_beside_the_heuristic(smollm2, tmp_path, capsys, dev):
    dev = str(dev.documents)
    generations = tmp_path / "generations.jsonl"
    args = ["evidence-eval", "--input", dev, "--positives", "2", "--negatives", "2", "--judge-model", str(smollm2)]
    assert main([*args, "--judge-max-new-tokens", "3", "--generations", str(generations)]) == 0
    header, heuristic, llm = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["judge", "n"]
    assert heuristic.split()[:2] == ["heuristic", "4"] and llm.split()[:2] == ["llm", "4"]
    rows = [json.loads(line) for line in generations.read_text().splitlines()]
    assert [r["is_evidence"] for r in rows] == [True, True, False, False]
    assert all(r["verdict"] == parse_verdict(r["generation"]) for r in rows)
    assert main(["evidence-eval", "--input", dev, "--judge", "llm", "--judge-model", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().endswith("no such model directory")


def test_unreadable_inputs_and_bad_counts_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("title: Lumen Vale\n")
    cases = [
        (["--input", str(tmp_path / "missing.json")], "missing.json: No such file or directory"),
        (["--input", str(tmp_path / "broken.json")], "broken.json: not a JSON array or JSON lines"),
        (["--input", str(tmp_path / "broken.json"), "--positives", "0"], "--positives and --negatives must be"),
    ]
    for args, fragment in cases:
        assert main(["evidence-eval", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("memllm evidence-eval: error: ") and err.count("\n") == 1 and fragment in err, err
