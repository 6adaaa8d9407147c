# The node: ssboot.py picks the app slot (an update's, or the flashed one) and runs
# ssnode/app.py from it.
import ssboot

ssboot.start()
