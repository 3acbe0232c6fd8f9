"""Training programs meshstack renders a command line for, beside its own trainer and any user command."""
