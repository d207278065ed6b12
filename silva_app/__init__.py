"""silva_app: the person's side of silva: the rating page, silva's ratings log, pictures of
images and the one data root every file silva writes lives under.

It ships with the `pipeline` extra, where its dependencies (starlette, uvicorn) are; `silva rate`
opens it from the lean CLI.
"""
