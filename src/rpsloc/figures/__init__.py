"""The figures stage: every picture of the report, drawn from the stage files (one rule file,
workflow/rules/figures.smk). `drawing` holds what they share, `curves` the plots of numbers,
`galleries` the pictures of images, `show` the `rpsloc show` command."""
