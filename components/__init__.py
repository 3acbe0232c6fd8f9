"""Infrastructure building blocks: Pulumi ComponentResources and the catalog they size from."""
