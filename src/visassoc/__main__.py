from visassoc.cli import app

app(prog_name="visassoc")
