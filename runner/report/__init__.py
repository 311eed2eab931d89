"""Reports about runs that happened or are happening: `erun report` (text and an HTML page with a
timeline) and `erun status`. Read the record only (`runner.record`); start nothing.
"""
