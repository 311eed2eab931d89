"""erun's Hydra launcher: `hydra/launcher=erun` (erun's default), points side by side on the node's slots."""
