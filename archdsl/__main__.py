from archdsl._launch import main

raise SystemExit(main())
