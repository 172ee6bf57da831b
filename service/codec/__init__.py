"""Bytes to arrays and back, with no HTTP and no model in them: the PNG format itself (`png`),
any client's PNG to the 28x28 digits the model was trained on (`digits`), many frames as one
GIF or strip (`frames`), and base64 inside JSON (`text`)."""
