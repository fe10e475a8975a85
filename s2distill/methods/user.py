"""A user's own program as a method: `module:function` or `path/to/file.py:function` (see
s2distill/user_code.py for how it is found)."""

from s2distill.user_code import load_user_function as load_user_program

__all__ = ["load_user_program"]
