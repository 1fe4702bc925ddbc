"""Team mode: the library on a Chroma server and the model behind an OpenAI-compatible endpoint.

Each half is optional and chosen by settings (library_server, llm_server); local stays the
default and team mode never opens or changes the local library's files. See docs/team-setup.md.
"""
