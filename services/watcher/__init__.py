"""The control plane: drops become runs, stalled work is sent again (one active, Redis lock)."""
