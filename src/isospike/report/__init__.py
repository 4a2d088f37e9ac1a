"""Reports: tables, plots and the end-to-end jobs behind the command line."""
