"""Policy plugins used by the tests: given to `place()` as `module:function`."""
