"""Results: what a finished run tells people, read back from its run folder.

Holds the summary by group (:mod:`.summary`: ``summary.csv`` and ``summary.png``), the
data behind the plots of the results view (:mod:`.plot_data`), the plots by group
(:mod:`.group_plots`), the plot of a sweep (:mod:`.sweep_plot`), the before and after
plot of an illumination correction (:mod:`.illumination_plot`), and a screen's
conclusions: the plate map (:mod:`.annotations`), flags, controls, z-scores and Z'
(:mod:`.screen`), plate heat maps (:mod:`.plate_map`), and writing them all
(:mod:`.conclusions`). It reads the run folder (:mod:`..run_folder`) and writes only
figures and tables into it; it never runs a pipeline. Nothing is imported here
(matplotlib loads only for a figure).
"""
