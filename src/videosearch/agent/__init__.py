"""The episode loop of the search agent: one-shot, hard (HQR) and soft (SQR) query refinement."""

from videosearch.agent.episode import Agent, AgentConfig

__all__ = ["Agent", "AgentConfig"]
