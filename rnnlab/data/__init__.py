"""Data for every task: vocabularies and TBPTT streams (text), word corpora (words), labelled sequences
and toy tasks (sequences), IAM-OnDB strokes (strokes, iamondb), synthetic handwriting (hershey), the
built-in tiny Shakespeare, and dataset downloads (download)."""
