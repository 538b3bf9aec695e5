"""The one-shot search baseline: top-1 video of the engine, its best segment as the span, no policy.

Run: `videosearch baseline run runs/index --annotations runs/world/test.jsonl --out runs/baseline.jsonl`.
"""

from __future__ import annotations

import time

from videosearch.corpus.types import Moment
from videosearch.engine import SearchEngine
from videosearch.eval.predictions import Judgement, Prediction
from videosearch.progress import track

RANKING_DEPTH = 100


def run_search_baseline(engine: SearchEngine, moments: list[Moment], batch_size: int = 64) -> list[Prediction]:
    """One prediction per moment: rankings `RANKING_DEPTH` deep and one `matched` judgement of the top-1."""
    predictions = []
    for start in track(range(0, len(moments), batch_size), description="one-shot search"):
        chunk = moments[start: start + batch_size]
        began = time.perf_counter()
        hits_per_query = engine.search_by_vector(engine.encode_queries([m.query for m in chunk]), k=RANKING_DEPTH)
        seconds = (time.perf_counter() - began) / len(chunk)
        for moment, hits in zip(chunk, hits_per_query):
            ranking, hit = [h.video_id for h in hits], hits[0]
            judgement = Judgement(video=hit.video_id, answer="matched", span=(hit.start_s, hit.end_s),
                                  generated_tokens=0, latent_steps=0, seconds=seconds)
            predictions.append(Prediction(qid=moment.qid, query=moment.query, ranking_turn1=ranking, ranking=ranking,
                                          judgements=[judgement]))
    return predictions
