"""The HIL rig in labgrid's layout: resources (what a board is), drivers (what a test can
do to it), one strategy (off -> booted -> provisioned), and the frame injector."""
