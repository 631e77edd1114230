"""Voice of the customer: sentiment and themes of what customers wrote, tied to the journey, and interviews.

- ``sentiment``: VADER sentiment of texts.
- ``themes``: TF-IDF + NMF themes with labels and quotes; ``embedding_themes``: the optional embeddings method.
- ``texts``: every customer text with where it was said, its sentiment and theme, and tables per stage,
  touchpoint, persona and period (``journeymap voice``).
- ``interviews``: interview transcripts as customer texts (``journeymap interviews``).

Docs: docs/metrics/voice-of-customer.md. ``voice`` below is the function (``texts.voice``), not a module.
"""

from __future__ import annotations

from journeymap.insights.voice.embedding_themes import find_themes_embedded
from journeymap.insights.voice.interviews import Transcript, TranscriptError, add_interviews, parse_transcript
from journeymap.insights.voice.sentiment import SentimentScores, score_texts
from journeymap.insights.voice.texts import (
    GROUPS,
    blend_emotion,
    representative_quotes,
    stage_sentiment,
    text_rows,
    voice,
)
from journeymap.insights.voice.themes import Theme, ThemeResult, find_themes

__all__ = [
    "GROUPS",
    "SentimentScores",
    "Theme",
    "ThemeResult",
    "Transcript",
    "TranscriptError",
    "add_interviews",
    "blend_emotion",
    "find_themes",
    "find_themes_embedded",
    "parse_transcript",
    "representative_quotes",
    "score_texts",
    "stage_sentiment",
    "text_rows",
    "voice",
]
