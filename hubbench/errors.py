"""What the user got wrong: `InputError` is the base of every exception that means bad input (an option, a suite,
a plugin spec, a protocol, a declaration, a dataset or checkpoint file, a record file).

The command line reports exactly these as one line and exit code 2. Any other exception is a fault of hubbench, of
a plugin or of the machine, and keeps its traceback: in the record of the cell it ended, on stderr for a command.
"""


class InputError(ValueError):
    """Bad input; the message names it and what is valid. A `ValueError`, as bad values were before it existed."""
