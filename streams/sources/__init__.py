"""Active search: source connectors that find content and send it to the content topic
(``propwatch sources run|once SOURCES.yml``)."""
