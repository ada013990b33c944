from archdsl.cli import main

raise SystemExit(main())
