"""The video LLM policy: output grammar, SQR head, latent rollout."""
