"""Data sets: the synthetic task pairs with controlled correlation, and the UCI Census-income benchmark."""
from .census import (CENSUS_BASE_URL, CENSUS_COLUMNS, CensusIncome, census_label_correlations, download_census_income,
                     load_census_income)
from .synthetic import (SyntheticData, SyntheticSpec, SyntheticTasks, make_synthetic, sine_labels,
                        weight_coordinates)

__all__ = ["make_synthetic", "SyntheticSpec", "SyntheticTasks", "SyntheticData", "sine_labels", "weight_coordinates",
           "load_census_income", "CensusIncome", "census_label_correlations", "download_census_income",
           "CENSUS_COLUMNS", "CENSUS_BASE_URL"]
