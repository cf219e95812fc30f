"""Customer Programs: recipients and accounts pushed to Gainsight, and the checks that guard the push."""
