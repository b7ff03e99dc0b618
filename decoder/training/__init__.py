"""Training the shared decoder: data, targets and the trainer."""
