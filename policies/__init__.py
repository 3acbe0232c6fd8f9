"""meshstack's CrossGuard policy pack: security and cost rules for what a stack declares."""
