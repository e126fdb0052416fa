"""Market data: exchange calendar, bar sources (synthetic, files) and quality control."""
