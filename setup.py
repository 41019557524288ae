"""The C top-k kernel of the bm25s engine (metadata lives in pyproject.toml). Optional: if it does not compile,
the install goes on and the engine answers through its numpy path (src/searchgym/index/bm25s_engine.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "searchgym.index._bm25kernel",
            ["src/searchgym/index/_bm25kernel.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        )
    ]
)
