# The node: see ssnode/app.py.
from ssnode.app import main

main()
