"""Data for every task: vocabularies and TBPTT streams (text), word corpora (words), labelled sequences
and toy tasks (sequences), sequence-to-sequence pairs and their toy tasks (pairs), IAM-OnDB strokes
(strokes, iamondb), synthetic handwriting (hershey), the built-in tiny Shakespeare, and dataset downloads
(download)."""
