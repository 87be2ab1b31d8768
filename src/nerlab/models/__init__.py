"""The networks, as plain ``nn.Module``s: word embeddings, char encoders, the BiLSTM encoder,
the CRF (with its compiled kernels) and the tagger that wires them
(:func:`~nerlab.models.bilstm_crf.build_tagger`, used by training and loading alike). Nothing here
knows about Lightning, files or tag strings beyond the tag-scheme rules of ``nerlab.data``."""
