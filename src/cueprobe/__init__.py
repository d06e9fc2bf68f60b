"""cueprobe: probe how audio language models use acoustic concept tokens in SER.

Stages, in pipeline order (a module imports only from stages before it):
``corpora`` -> ``features`` -> ``tokens`` -> ``interventions`` -> ``prompts`` ->
``backends``/``inference`` -> ``parsing`` -> ``metrics``/``stats`` -> ``tables``/``figures``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
