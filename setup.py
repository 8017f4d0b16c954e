"""Package layout only (metadata is in pyproject.toml): cmd/ is installed as ``kuberay_operator``, since
a top-level ``cmd`` package would shadow the standard library's ``cmd`` module."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["api*", "controllers*", "internal*", "pkg*"]), "kuberay_operator"],
    package_dir={"kuberay_operator": "cmd"},
)
