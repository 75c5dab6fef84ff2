"""What `polyx inspect` shows: each module turns one kind of file into a JSON-ready report and text blocks."""
