"""The demo's report: charts of the stack and its training run, and a page that shows them together."""
