"""nerlab."""
