from pathlib import Path

from setuptools import find_packages, setup

requirements = [
    line.strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="desed_task",
    version="0.1.0",
    description="Sound event detection research: DCASE Task 4 baselines, IRCT and related recipes",
    packages=find_packages(include=["desed_task", "desed_task.*"]),
    python_requires=">=3.9",
    install_requires=requirements,
    extras_require={
        "test": ["pytest", "librosa", "nbclient", "nbformat", "nbconvert", "ipykernel"],
        "sebbs": ["sebbs>=1.0.2"],  # cSEBBs post-processing; AGPL-3.0
    },
)
