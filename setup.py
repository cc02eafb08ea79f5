"""Everything but the package list and the data copy is in pyproject.toml.

The Python packages are found, so a new si4tool.* subpackage is never left out of a wheel.
templates/ and firmware_stub/ stay at the top of the repository, where users look for them:
they are data, not packages, and a wheel carries them as si4tool/templates and
si4tool/firmware_stub (copied here at build time). An editable install reads them from the
checkout (si4tool.targets.toolchain looks in both places), so it needs no import hook and
setuptools has nothing to warn about.
"""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("templates", "firmware_stub")
DATA_SUFFIXES = {".j2", ".c", ".h", ".ld", ".s", ".S", ".mk", ".md"}


class build_py_with_data(build_py):
    """build_py, then the C and template folders copied into the built package."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        for folder in DATA_FOLDERS:
            # A build/ folder reused from an earlier build may hold files since removed.
            shutil.rmtree(Path(self.build_lib, "si4tool", folder), ignore_errors=True)
            for source in sorted(Path(folder).rglob("*")):
                if source.is_file() and (source.suffix in DATA_SUFFIXES or source.name == "Makefile"):
                    target = Path(self.build_lib, "si4tool", source)
                    self.mkpath(str(target.parent))
                    self.copy_file(str(source), str(target))


# package_dir {"": "."}: the packages sit at the top of the checkout, which an editable
# install puts on sys.path as it is (a .pth file) instead of an import hook.
setup(
    package_dir={"": "."},
    packages=find_packages(include=["si4tool", "si4tool.*"]),
    cmdclass={"build_py": build_py_with_data},
)
