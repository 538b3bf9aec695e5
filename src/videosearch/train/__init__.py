"""Training: the mini retriever, and later SFT and GRPO of the policy."""
