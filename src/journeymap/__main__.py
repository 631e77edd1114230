from journeymap.cli.main import app

app(prog_name="journeymap")
