"""Episodes written to a resumable predictions file (the body of `videosearch agent run` and `bench/decompose.py`).

    done = resumable_predictions(out, moments, config.settings, source=annotations)   # cheap checks first
    written = write_episodes(Agent(engine, policy, config), moments, out, done)

A rerun after an interruption skips the queries already written and ends with the file an uninterrupted run
writes: episodes run in the batches an uninterrupted run forms.
"""

from __future__ import annotations

from pathlib import Path

from videosearch.agent.episode import Agent
from videosearch.corpus.types import Moment
from videosearch.errors import ConfigError
from videosearch.eval.predictions import Prediction, append_prediction, existing_predictions, write_predictions
from videosearch.progress import progress


def resumable_predictions(out: Path, moments: list[Moment], settings: dict[str, object],
                          source: object = "the annotations") -> list[Prediction]:
    """The predictions `out` already holds, checked to belong to this run.

    Args:
        out: the predictions file (missing is fine; a file of anything else is refused).
        moments: the queries of this run.
        settings: what the run's predictions record in `extra` (`AgentConfig.settings`); every existing prediction
            must record the same.
        source: where `moments` come from, named in the error.

    Raises:
        ConfigError: a prediction of other settings, or of a query that is not in `moments`.
    """
    done = existing_predictions(out)
    for prediction in done:
        for name, value in settings.items():
            if name not in prediction.extra:
                raise ConfigError(f"{out} holds predictions that do not record {name} (an older run); this run has "
                                  f"{name}={value}: write to another file")
            if prediction.extra[name] != value:
                raise ConfigError(f"{out} holds predictions with {name}={prediction.extra[name]}, this run has "
                                  f"{name}={value}: write to another file, or pass the same settings to resume it")
    unknown = {p.qid for p in done} - {m.qid for m in moments}
    if unknown:
        raise ConfigError(f"{out} holds queries that are not in {source} (e.g. {sorted(unknown)[0]!r})")
    return done


def write_episodes(agent: Agent, moments: list[Moment], out: Path, done: list[Prediction],
                   description: str = "agent") -> int:
    """Run the episodes of the queries `done` lacks and append them to `out`, one line each; returns how many."""
    finished = {p.qid for p in done}
    batch_size = agent.config.batch_size
    out.parent.mkdir(parents=True, exist_ok=True)
    write_predictions(out, done)  # drops a line an interruption cut short
    written = 0
    with out.open("a", encoding="utf-8") as fh, progress() as bar:
        task = bar.add_task(description, total=len(moments), completed=len(done))
        # whole batches as an uninterrupted run forms them, so a resumed run writes the same predictions
        for start in range(0, len(moments), batch_size):
            batch = moments[start: start + batch_size]
            if all(m.qid in finished for m in batch):
                continue
            for prediction in agent.run_batch(batch):
                if prediction.qid not in finished:
                    append_prediction(fh, prediction)
                    written += 1
                    bar.advance(task)
    return written
