"""Everything but the package list is in pyproject.toml.

The Python packages are found, so a new si4tool.* subpackage is never left out of a wheel;
templates/ and firmware_stub/ are added as the two data packages that pyproject.toml maps
into si4tool (their sub-folders hold no Python and are not packages).
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["si4tool", "si4tool.*"]), "si4tool.templates", "si4tool.firmware_stub"])
